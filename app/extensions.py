"""Extensions, created unbound and bound to the app in ``create_app``."""

from datetime import datetime

from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from htmx_flask import Htmx
from sqlalchemy import DateTime, MetaData
from sqlalchemy.orm import DeclarativeBase, registry

# Named constraints so Alembic migrations are the same on SQLite (batch mode) and Postgres.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class Base(DeclarativeBase):
    # Every stored time is timezone-aware UTC (Postgres timestamptz; SQLite keeps the text).
    registry = registry(metadata=metadata, type_annotation_map={datetime: DateTime(timezone=True)})


db = SQLAlchemy(model_class=Base)
migrate = Migrate(render_as_batch=True, compare_type=True)
csrf = CSRFProtect()
htmx = Htmx()
# Wired up (user loader, bearer tokens, refusals) in ``app/accounts/auth.py``.
login_manager = LoginManager()
