"""Connections to MariaDB, Redis and RabbitMQ, configured from the environment and the secrets.

pymysql, redis and pika are imported where a connection is made, so that the unit tests run without them.
"""

import hashlib

from .config import env, env_int, read_secret


def mysql_config():
    password = read_secret("DB_PASSWORD_FILE", "db_password")
    return {
        "host": env("DB_HOST", "mariadb"),
        "port": env_int("DB_PORT", 3306, 1),
        "user": credential_user(env("DB_USER", "shopstream"), password),
        "password": password,
        "database": env("DB_NAME", "shopstream"),
    }


def mysql_connect(cfg):
    import pymysql

    return pymysql.connect(
        **cfg,
        connect_timeout=5,
        read_timeout=10,
        write_timeout=10,
        autocommit=False,
        charset="utf8mb4",
        cursorclass=pymysql.cursors.DictCursor,
    )


def mysql_ping(cfg):
    conn = mysql_connect(cfg)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
    finally:
        conn.close()


def redis_client():
    import redis

    return redis.Redis(
        host=env("REDIS_HOST", "redis"),
        port=env_int("REDIS_PORT", 6379, 1),
        username=env("REDIS_USERNAME", "") or None,
        password=read_secret("REDIS_PASSWORD_FILE", "redis_password"),
        socket_timeout=2,
        socket_connect_timeout=2,
        health_check_interval=30,
    )


def credential_user(prefix, password):
    """The MariaDB or RabbitMQ user of a password: ``<prefix>-<first 8 hex digits of its SHA-256>``.
    Each password is a user of its own, so that the server takes the previous and the current
    password while a rotation moves the clients (the collection makes both: MariaDB's accounts,
    RabbitMQ's definitions secret), and drops the replaced one's user after."""
    return f"{prefix}-{hashlib.sha256(password.encode()).hexdigest()[:8]}"


def rabbitmq_parameters():
    import pika

    password = read_secret("RABBITMQ_PASSWORD_FILE", "rabbitmq_password")
    return pika.ConnectionParameters(
        host=env("RABBITMQ_HOST", "rabbitmq"),
        port=env_int("RABBITMQ_PORT", 5672, 1),
        virtual_host=env("RABBITMQ_VHOST", "/"),
        credentials=pika.PlainCredentials(credential_user(env("RABBITMQ_USER", "shopstream"), password), password),
        heartbeat=30,
        blocked_connection_timeout=10,
        connection_attempts=1,
        socket_timeout=5,
    )
