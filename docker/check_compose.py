"""Check docker-compose.yml without a Docker engine: interpolate, parse, validate, cross-check.

    python docker/check_compose.py [--env-file .env.example] [--schema compose_spec.json]

Needs PyYAML (and jsonschema for --schema). Interpolates ${VAR}, ${VAR:-default}, ${VAR:?error}
and $$ the way compose does, from the env file; parses the YAML (merge keys included); validates
it against a Compose Specification JSON schema when one is given; then checks what a schema
cannot: dependencies wait on services that have health checks, named volumes are declared, the
Dockerfile exists, and every variable the compose file or the service (engine/config.py) reads is
documented in the env file. Exits 1 with a list of problems, 0 when there are none.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
SETTINGS_MODULE = ROOT / "engine" / "config.py"  # every variable the service reads is read there
EXPECTED_SERVICES = ("web", "worker", "postgres", "redis")
_VARIABLE = re.compile(r"\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")


def read_env_file(path: Path) -> tuple[dict[str, str], set[str]]:
    """(values set, names documented — set or commented out like `# NAME=value`)."""
    values, documented = {}, set()
    for line in path.read_text().splitlines():
        match = re.match(r"^\s*(#\s*)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$", line)
        if match:
            documented.add(match.group(2))
            if not match.group(1):
                values[match.group(2)] = match.group(3)
    return values, documented


def interpolate(text: str, env: dict[str, str], problems: list[str]) -> tuple[str, set[str]]:
    used: set[str] = set()

    def replace(match: re.Match) -> str:
        if match.group(1):
            return "$"
        name = match.group(2) or match.group(5)
        used.add(name)
        value, operator, argument = env.get(name), match.group(3), match.group(4)
        if operator in (":-", "-"):
            return value if value or (operator == "-" and value is not None) else argument
        if operator in (":?", "?") and not value:
            problems.append(f"${{{name}}} is required: {argument}")
        return value or ""

    return _VARIABLE.sub(replace, text), used


def service_variables() -> set[str]:
    return set(re.findall(r"os\.environ\.get\(\s*[\"']([A-Z0-9_]+)[\"']", SETTINGS_MODULE.read_text()))


def check_schema(config: dict, schema_path: Path, problems: list[str]) -> None:
    schema = json.loads(schema_path.read_text())
    validator = _validator_class(schema.get("$schema", ""))(schema)
    for error in sorted(validator.iter_errors(config), key=lambda e: list(e.path)):
        problems.append(f"schema: {'/'.join(map(str, error.path)) or '(top)'}: {error.message}")


def _validator_class(uri: str):
    import jsonschema

    for marker, cls in (("2020-12", jsonschema.Draft202012Validator), ("2019-09", jsonschema.Draft201909Validator),
                        ("draft-07", jsonschema.Draft7Validator), ("draft-04", jsonschema.Draft4Validator)):
        if marker in uri:
            return cls
    return jsonschema.Draft7Validator


def check_structure(config: dict, problems: list[str]) -> None:
    services = config.get("services") or {}
    problems += [f"service '{name}' is missing" for name in EXPECTED_SERVICES if name not in services]
    declared_volumes = set(config.get("volumes") or {})
    for name, service in services.items():
        for target, rule in _depends_on(service).items():
            if target not in services:
                problems.append(f"{name} depends on unknown service '{target}'")
            elif rule.get("condition") == "service_healthy" and "healthcheck" not in services[target]:
                problems.append(f"{name} waits for {target} to be healthy, but {target} has no healthcheck")
        for volume in service.get("volumes") or []:
            source = volume.split(":", 1)[0] if isinstance(volume, str) else volume.get("source")
            if source and not source.startswith((".", "/")) and source not in declared_volumes:
                problems.append(f"{name} mounts undeclared volume '{source}'")
        dockerfile = (service.get("build") or {}).get("dockerfile")
        if dockerfile and not (ROOT / dockerfile).exists():
            problems.append(f"{name} builds from missing {dockerfile}")


def _depends_on(service: dict) -> dict:
    value = service.get("depends_on") or {}
    return {name: {} for name in value} if isinstance(value, list) else value


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compose", type=Path, default=ROOT / "docker-compose.yml")
    parser.add_argument("--env-file", type=Path, default=ROOT / ".env.example")
    parser.add_argument("--schema", type=Path, default=None, help="a Compose Specification JSON schema")
    args = parser.parse_args(argv)
    problems: list[str] = []
    env, documented = read_env_file(args.env_file)
    text, used = interpolate(args.compose.read_text(), env, problems)
    config = yaml.safe_load(text)
    if args.schema:
        check_schema(config, args.schema, problems)
    check_structure(config, problems)
    undocumented = sorted((used | service_variables()) - documented)
    problems += [f"{name} is not documented in {args.env_file.name}" for name in undocumented]
    for problem in problems:
        print(f"problem: {problem}")
    services, variables = ", ".join(config.get("services") or {}), ", ".join(sorted(used))
    print(f"{args.compose.name}: {len(problems)} problem(s); services: {services}; variables used: {variables}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
