"""Storage: accounts, room ids and the chat log in SQLite (default) or over ODBC, behind a pool."""

from chatcluster.common.storage.database import (
    CPU,
    DB,
    Database,
    LoginResult,
    SchemaError,
    drive_steps,
    login_steps,
    open_database,
    run_steps,
    token_login_steps,
)

__all__ = [
    "CPU", "DB", "Database", "LoginResult", "SchemaError", "drive_steps", "login_steps", "open_database", "run_steps",
    "token_login_steps",
]
