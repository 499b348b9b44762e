#!/usr/bin/python
# Copyright: ShopStream platform team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: platform_journey
short_description: Walk ShopStream's user journey through its public entry point
version_added: 0.2.0
author: ShopStream platform team (@shopstream)
description:
  - Proves the deployed platform end to end, as a browser would use it through Traefik. Logs in
    (auth), creates a product (product), opens the notification WebSocket (gateway to notification),
    places an order of that product (order, which publishes to RabbitMQ), and waits for that order's
    notification on the WebSocket.
  - Fails naming the step that failed, never showing the password or the token.
  - The product and the order it creates are real records of the shop, named C(verify-<time>) by
    default, which is why the module reports C(changed). Nothing of the deployment changes.
  - Standard library only (no requests, no websocket package) on the host that runs it.
extends_documentation_fragment:
  - shopstream.swarm.attributes
options:
  url:
    description:
      - Base URL of the platform, e.g. Traefik's published port C(http://127.0.0.1:80), or
        C(https://shop.example.com). The API is under C(/api) of it.
    type: str
    required: true
  username:
    description: The user to log in as; the auth service seeds C(demo).
    type: str
    default: demo
  password:
    description:
      - That user's password. For C(demo), the vault's C(vault_shopstream_demo_password) (the
        secrets role's C(demo_password)).
    type: str
    required: true
  product_name:
    description:
      - Name of the product created; C(verify-<unix time>) when omitted.
      - The product is created unlisted - it can be ordered and read by its id, but the catalogue that shoppers
        see (C(GET /api/products)) never shows it.
    type: str
  timeout:
    description: Seconds each HTTP request and the WebSocket handshake may take.
    type: int
    default: 30
  notification_timeout:
    description: Seconds to wait for the order's notification on the WebSocket.
    type: int
    default: 20
  rate_limit_wait:
    description:
      - Seconds, in all, the journey may wait when the gateway refuses a request with 429 (shoppers from the
        same address, or the run's own earlier journeys, used up the limit), each time as its C(Retry-After)
        asks; a step refused longer fails naming the 429.
    type: int
    default: 90
    version_added: 0.3.0
  validate_certs:
    description: Check the server's certificate when I(url) is https.
    type: bool
    default: true
  ca_certificate:
    description:
      - The CA (PEM) the server's certificate must come from when I(url) is https, e.g. the vault's
        C(shopstream_tls_ca_certificate) that C(vault_init)'s local CA made. The system's trusted CAs
        when omitted.
    type: str
  pages:
    description:
      - Paths fetched with C(GET) and no token before the journey (also in check mode, as they
        change nothing); their status, headers and first 200 characters are in RV(pages), e.g. to
        check a route or the browser security headers.
    type: list
    elements: str
    default: []
attributes:
  check_mode:
    support: full
    details: In check mode the journey is not walked (it would create records); the result says so.
  diff_mode:
    support: none
  idempotent:
    support: none
    details: Every run creates one product and one order.
seealso:
  - module: shopstream.swarm.swarm_stack
"""

EXAMPLES = r"""
- name: The journey through Traefik on the edge manager
  shopstream.swarm.platform_journey:
    url: http://127.0.0.1:80
    password: "{{ vault_shopstream_demo_password }}"
  register: journey

- name: Against the public name, in check mode it only says what it would do (no change)
  shopstream.swarm.platform_journey:
    url: https://shop.example.com
    password: "{{ vault_shopstream_demo_password }}"
    product_name: smoke-test
  check_mode: true

- name: Over HTTPS with the platform's private CA, and the front page's headers
  shopstream.swarm.platform_journey:
    url: https://127.0.0.1:443
    ca_certificate: "{{ shopstream_tls_ca_certificate }}"
    password: "{{ vault_shopstream_demo_password }}"
    pages: [/, /app.js]
  register: journey
"""

RETURN = r"""
steps:
  description: Each step passed, in order, with seconds since the start and what it returned
    (HTTP status, product and order ids, the notification's type). Never the token.
  returned: success
  type: list
  elements: dict
  sample:
    - {step: login, status: 200, user: demo, seconds: 0.081}
    - {step: create product, status: 201, product_id: 12, seconds: 0.12}
    - {step: notification websocket, status: 101, seconds: 0.13}
    - {step: place order, status: 201, order_id: 7, event_id: 3f2a9c, seconds: 0.71}
    - {step: notification, type: order.created, order_id: 7, seconds: 0.75}
product_id:
  description: Id of the product created.
  returned: success
  type: int
order_id:
  description: Id of the order placed.
  returned: success
  type: int
seconds:
  description: Duration of the journey.
  returned: success
  type: float
failed_step:
  description: The step that failed.
  returned: failure
  type: str
  sample: notification
pages:
  description: What O(pages) answered, in order (also when the journey fails).
  returned: always
  type: list
  elements: dict
  sample:
    - {path: /, status: 200, headers: {content-type: text/html, x-frame-options: DENY}, body: "<!doctype html>"}
msg:
  description: What was proven, or which step failed and why.
  returned: always
  type: str
"""

import http.client
import ssl

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.shopstream.swarm.plugins.module_utils._journey import Client, JourneyError, run_journey


def main():
    module = AnsibleModule(
        argument_spec=dict(
            url=dict(type="str", required=True),
            username=dict(type="str", default="demo"),
            password=dict(type="str", required=True, no_log=True),
            product_name=dict(type="str"),
            timeout=dict(type="int", default=30),
            notification_timeout=dict(type="int", default=20),
            rate_limit_wait=dict(type="int", default=90),
            validate_certs=dict(type="bool", default=True),
            ca_certificate=dict(type="str"),
            pages=dict(type="list", elements="str", default=[]),
        ),
        supports_check_mode=True,
    )
    p = module.params
    try:
        client = Client(p["url"], p["timeout"], p["validate_certs"], p["ca_certificate"])
    except ValueError as exc:
        module.fail_json(msg=f"Cannot walk the journey: {exc}; give url as http(s)://host[:port].")
    except ssl.SSLError as exc:
        module.fail_json(msg=f"ca_certificate is not a PEM certificate: {exc}")
    pages = []
    for path in p["pages"]:
        try:
            pages.append(client.page(path))
        except (OSError, http.client.HTTPException) as exc:
            msg = f"GET {p['url']}{path} failed: {type(exc).__name__}: {exc}"
            module.fail_json(msg=msg, failed_step="pages", pages=pages)
    if module.check_mode:
        module.exit_json(
            changed=False,
            steps=[],
            pages=pages,
            msg=f"Check mode: the journey through {p['url']} was not walked (it would create a product and an order).",
        )
    try:
        result = run_journey(
            client, p["username"], p["password"], p["product_name"], p["notification_timeout"], p["rate_limit_wait"]
        )
    except JourneyError as exc:
        module.fail_json(msg=f"The journey through {p['url']} failed at {exc}", failed_step=exc.step, pages=pages)
    module.exit_json(
        changed=True,
        pages=pages,
        msg=(
            f"Journey through {p['url']} in {result['seconds']} s: login as {p['username']}, product "
            f"{result['product_id']} created, order {result['order_id']} placed, its notification received "
            "over the WebSocket."
        ),
        **result,
    )


if __name__ == "__main__":
    main()
