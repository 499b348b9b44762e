"""Secrets come only from files under the secrets directory; a missing required one stops the service."""

import os

import pytest
from shopstream import config, gateway


def test_reads_the_default_file_and_drops_one_newline(secrets_dir):
    (secrets_dir / "db_password").write_text("p@ss word\n\n")
    assert config.read_secret("DB_PASSWORD_FILE", "db_password") == "p@ss word\n"


def test_file_name_and_absolute_path_from_the_variable(secrets_dir, monkeypatch):
    (secrets_dir / "shop_db").write_text("one\r\n")
    monkeypatch.setenv("DB_PASSWORD_FILE", "shop_db")
    assert config.read_secret("DB_PASSWORD_FILE", "db_password") == "one"
    monkeypatch.setenv("DB_PASSWORD_FILE", str(secrets_dir / "shop_db"))
    assert config.read_secret("DB_PASSWORD_FILE", "db_password") == "one"


def test_missing_required_secret_names_variable_and_path(secrets_dir):
    with pytest.raises(config.ConfigError) as err:
        config.read_secret("DB_PASSWORD_FILE", "db_password")
    assert "DB_PASSWORD_FILE" in str(err.value)
    assert str(secrets_dir / "db_password") in str(err.value)
    assert "missing" in str(err.value)


def test_missing_optional_secret_is_none(secrets_dir):
    assert config.read_secret("DEMO_PASSWORD_FILE", "demo_password", required=False) is None


def test_files_outside_the_secrets_directory_are_refused(secrets_dir, monkeypatch, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.write_text("x")
    for value in (str(outside), "../elsewhere"):
        monkeypatch.setenv("DB_PASSWORD_FILE", value)
        with pytest.raises(config.ConfigError, match="outside"):
            config.read_secret("DB_PASSWORD_FILE", "db_password")


def test_symlink_out_of_the_secrets_directory_is_refused(secrets_dir, tmp_path):
    (tmp_path / "real").write_text("x")
    os.symlink(tmp_path / "real", secrets_dir / "db_password")
    with pytest.raises(config.ConfigError, match="outside"):
        config.read_secret("DB_PASSWORD_FILE", "db_password")


def test_empty_and_short_secrets_are_refused_without_showing_them(secrets_dir):
    (secrets_dir / "db_password").write_text("\n")
    with pytest.raises(config.ConfigError, match="shorter"):
        config.read_secret("DB_PASSWORD_FILE", "db_password")
    (secrets_dir / "jwt_signing_key").write_text("short-key-123")
    with pytest.raises(config.ConfigError) as err:
        config.read_secret("JWT_SIGNING_KEY_FILE", "jwt_signing_key", min_length=32)
    assert "short-key-123" not in str(err.value)


def test_directory_and_binary_content_are_clear_errors(secrets_dir):
    (secrets_dir / "db_password").mkdir()
    with pytest.raises(config.ConfigError, match="directory"):
        config.read_secret("DB_PASSWORD_FILE", "db_password")
    (secrets_dir / "redis_password").write_bytes(b"\xff\xfe")
    with pytest.raises(config.ConfigError, match="UTF-8"):
        config.read_secret("REDIS_PASSWORD_FILE", "redis_password")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file_names_the_uid(secrets_dir):
    path = secrets_dir / "db_password"
    path.write_text("x")
    path.chmod(0)
    with pytest.raises(config.ConfigError, match="not readable by uid"):
        config.read_secret("DB_PASSWORD_FILE", "db_password")


def test_gateway_refuses_to_start_without_its_signing_key(secrets_dir):
    with pytest.raises(config.ConfigError, match="JWT_SIGNING_KEY_FILE"):
        gateway.build()


def test_main_exits_2_with_a_json_error_and_no_secret(secrets_dir, capsys):
    from shopstream.__main__ import main

    (secrets_dir / "jwt_signing_key").write_text("too-short-but-secret")
    assert main(["gateway"]) == 2
    out = capsys.readouterr().out
    assert '"level":"error"' in out
    assert "JWT_SIGNING_KEY_FILE" in out
    assert "too-short-but-secret" not in out


def test_main_refuses_an_unknown_service(capsys):
    from shopstream.__main__ import main

    assert main(["billing"]) == 64
    assert "usage" in capsys.readouterr().err
