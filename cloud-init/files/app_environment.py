# The app's environment from its files: one rule for Gunicorn's config (at each start and reload) and
# the release command (which runs this file as a program, in the app's sandbox, as the app's user).
import json
import os
import sys

SETTINGS = "{{APP_SETTINGS_PATH}}"
MANIFEST = "{{APP_SECRETS_MANIFEST_PATH}}"
# The database password: a file of the app's secrets, never a variable of the unit's (issue 19).
DB_PASSWORD_FILE = "{{APP_DB_PASSWORD_PATH}}"


def settings_env():
    """The app's settings (appEnv): {"env": {NAME: value}}."""
    try:
        with open(SETTINGS) as handle:
            return json.load(handle)["env"]
    except FileNotFoundError:
        return {}


def secrets_env():
    """The app's secrets: the database password and the variables its manifest names (appSecrets;
    a secret taken out of appSecrets leaves the app's environment, even if its file stays), each
    read from its own file, the app's user's alone (0400), trailing newlines kept."""
    try:
        with open(MANIFEST) as handle:
            paths = [entry["path"] for entry in json.load(handle)]
    except FileNotFoundError:
        paths = []
    values = {}
    for path in [DB_PASSWORD_FILE, *paths]:
        try:
            with open(path) as handle:
                values[os.path.basename(path)] = handle.read()
        except FileNotFoundError:
            # Not fetched yet on a node booted before the app had its own user: its preflight and
            # its release command still pass the password on from app.env, once.
            if path != DB_PASSWORD_FILE:
                raise
    return values


def app_environment():
    """The app's variables by name: its settings and its secrets."""
    return {**settings_env(), **secrets_env()}


if __name__ == "__main__":
    # NAME\0value\0 for each: a value may hold any character but NUL, as an environment's can.
    for name, value in app_environment().items():
        sys.stdout.write(f"{name}\0{value}\0")
