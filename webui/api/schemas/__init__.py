"""Request and response schemas (marshmallow), one module per resource.

Blueprints use them as `schemas.Name`; this package re-exports every schema.
"""
from .common import *  # noqa: F401,F403
from .changes import *  # noqa: F401,F403
from .tasks import *  # noqa: F401,F403
from .services import *  # noqa: F401,F403
from .definitions import *  # noqa: F401,F403
from .templates import *  # noqa: F401,F403
from .cab import *  # noqa: F401,F403
from .schedule import *  # noqa: F401,F403
from .windows import *  # noqa: F401,F403
from .evidence import *  # noqa: F401,F403
from .background import *  # noqa: F401,F403
from .dashboard import *  # noqa: F401,F403
