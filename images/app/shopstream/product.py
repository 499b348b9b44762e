"""product: GET/POST /api/products, stored in MariaDB. A product created with "listed": false (the
platform's verify journey) is sold and found by its id, but never listed in the shoppers' catalogue."""

import logging
import threading

from . import clients, server, tokens

LOG = logging.getLogger("shopstream.product")
SCHEMA = """
CREATE TABLE IF NOT EXISTS products (
  id INT AUTO_INCREMENT PRIMARY KEY,
  name VARCHAR(200) NOT NULL,
  description TEXT NULL,
  price_cents INT NOT NULL,
  stock INT NOT NULL DEFAULT 0,
  listed BOOLEAN NOT NULL DEFAULT TRUE,
  created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
"""
# A table made before the column existed gets it (its products stay listed).
MIGRATIONS = ("ALTER TABLE products ADD COLUMN IF NOT EXISTS listed BOOLEAN NOT NULL DEFAULT TRUE AFTER stock",)
COLUMNS = "id, name, description, price_cents, stock, listed"


def validate(data):
    """The columns of a new product, or HTTPError 400."""
    name, price, stock = data.get("name"), data.get("price_cents"), data.get("stock", 0)
    description = data.get("description") or None
    listed = data.get("listed", True)
    if not isinstance(listed, bool):
        raise server.HTTPError(400, "listed must be true or false")
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise server.HTTPError(400, "name must be a non-empty string of at most 200 characters")
    for field, value in (("price_cents", price), ("stock", stock)):
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 10**9:
            raise server.HTTPError(400, f"{field} must be an integer between 0 and 10^9")
    if description is not None and (not isinstance(description, str) or len(description) > 2000):
        raise server.HTTPError(400, "description must be a string of at most 2000 characters")
    return name.strip(), description, price, stock, listed


def shown(row):
    """A row as the API shows it (MariaDB's BOOLEAN is a TINYINT)."""
    return dict(row, listed=bool(row["listed"]))


def build():
    db = clients.mysql_config()
    app = server.App("product", verify_token=tokens.token_verifier())
    app.health_checks["mariadb"] = lambda: clients.mysql_ping(db)

    def query(sql, args=(), write=False):
        if not app.ready.is_set():
            raise server.HTTPError(503, "starting")
        conn = clients.mysql_connect(db)
        try:
            with conn.cursor() as cur:
                cur.execute(sql, args)
                result = cur.lastrowid if write else cur.fetchall()
            conn.commit()
            return result
        finally:
            conn.close()

    def init():
        conn = clients.mysql_connect(db)
        try:
            with conn.cursor() as cur:
                cur.execute(SCHEMA)
                for migration in MIGRATIONS:
                    cur.execute(migration)
            conn.commit()
        finally:
            conn.close()
        LOG.info("schema ready")
        app.ready.set()

    def list_products(req):
        limit = min(max(int(req.query.get("limit", "100")) if req.query.get("limit", "").isdigit() else 100, 1), 500)
        rows = query(f"SELECT {COLUMNS} FROM products WHERE listed ORDER BY id LIMIT %s", (limit,))  # noqa: S608
        return 200, {"products": [shown(row) for row in rows]}

    def get_product(req):
        rows = query(f"SELECT {COLUMNS} FROM products WHERE id=%s", (int(req.params["id"]),))  # noqa: S608
        if not rows:
            raise server.HTTPError(404, "no such product")
        return 200, shown(rows[0])

    def create_product(req):
        name, description, price, stock, listed = validate(req.json())
        product_id = query(
            "INSERT INTO products (name, description, price_cents, stock, listed) VALUES (%s, %s, %s, %s, %s)",
            (name, description, price, stock, listed),
            write=True,
        )
        app.metrics.inc("shopstream_products_created_total", "Products created.")
        LOG.info("product created", extra={"product_id": product_id, "user": req.user})
        body = {"id": product_id, "name": name, "description": description, "price_cents": price, "stock": stock,
                "listed": listed}  # fmt: skip
        return 201, body, {"Location": f"/api/products/{product_id}"}

    app.route("GET", "/api/products", list_products, user=True)
    app.route("POST", "/api/products", create_product, user=True)
    app.route("GET", r"/api/products/(?P<id>[0-9]{1,9})", get_product, label="/api/products/{id}", user=True)
    threading.Thread(target=server.retry_forever, args=("schema setup", init, app.stopping), daemon=True).start()
    return app
