"""Flask extensions, created unbound and attached in the app factory."""
from flask_smorest import Api
from flask_sqlalchemy import SQLAlchemy

from engine.db import Base

from .errors import ChangeflowApi

# The models subclass engine.db.Base (engine must not import Flask); the extension only
# provides the engine and the per-app-context session.
db = SQLAlchemy(metadata=Base.metadata)
api: Api = ChangeflowApi()
