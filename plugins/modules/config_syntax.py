#!/usr/bin/python
# Copyright: ShopStream platform team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: config_syntax
short_description: Check the syntax and structure of the platform's rendered configs
version_added: 0.3.0
author: ShopStream platform team (@shopstream)
description:
  - Runs on the controller (an action plugin), before any config reaches the swarm. Parses each
    rendered config (YAML or JSON; nginx's is left to nginx) and checks the structure its component
    needs, e.g. Traefik's root keys (Traefik ignores an unknown one silently) and entry point
    addresses, Grafana's datasources and dashboards, Loki's schema, Promtail's clients.
  - The real tools (nginx, Traefik, promtool, amtool) do not run here. The configs that need one
    are returned in RV(tool_checks), for M(shopstream.swarm.config_check) to run the tool inside the
    component's image.
  - Changes nothing; reports every invalid config at once in RV(errors) rather than failing, so
    that the caller can name them all before anything is created.
extends_documentation_fragment:
  - shopstream.swarm.attributes
  - shopstream.swarm.attributes.action
options:
  configs:
    description:
      - The configs to check, as the configs role's catalog lists them. Other keys of an entry
        (its template) are ignored.
    type: list
    elements: dict
    required: true
    suboptions:
      key:
        description: The config's short name, e.g. C(traefik), C(prometheus_rules).
        type: str
        required: true
      target:
        description: Where the component reads it, for the messages.
        type: str
        required: true
      check:
        description:
          - C(yaml) or C(json) (syntax and structure only), or a tool that checks it in its
            component's image after the syntax check, C(traefik), C(nginx), C(promtool_config),
            C(promtool_rules) or C(amtool).
        type: str
        required: true
      image:
        description: The component whose image holds the tool, for RV(tool_checks).
        type: str
  contents:
    description: The rendered text of each config, by its O(configs[].key).
    type: dict
    required: true
  mode:
    description:
      - The configs role's C(configs_validate). With C(skip), the configs that need a tool are
        reported in RV(skipped) instead of RV(tool_checks).
    type: str
    default: auto
    choices: [required, auto, skip]
  prefix:
    description: Prefix of the configs' names in the swarm, for the messages.
    type: str
    default: ""
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    support: full
  action:
    support: full
"""

EXAMPLES = r"""
- name: Check a Traefik static configuration and a Grafana dashboard
  shopstream.swarm.config_syntax:
    configs:
      - {key: traefik, target: /etc/traefik/traefik.yml, check: traefik, image: traefik}
      - {key: grafana_dashboard_shopstream, target: /etc/grafana/dashboards/shopstream.json, check: json}
    contents:
      traefik: "{{ lookup('ansible.builtin.template', 'traefik.yml.j2') }}"
      grafana_dashboard_shopstream: "{{ lookup('ansible.builtin.template', 'dashboard.json.j2') }}"
    prefix: shopstream_
  register: syntax

- name: Every config parsed and has what its component needs
  ansible.builtin.assert:
    that: syntax.errors | length == 0
    fail_msg: "{{ syntax.errors }}"
"""

RETURN = r"""
errors:
  description: One entry per invalid config.
  returned: success
  type: list
  elements: dict
  contains:
    key:
      description: The config's short name.
      type: str
    name:
      description: Its name in the swarm (O(prefix) and the key).
      type: str
    target:
      description: Where the component reads it.
      type: str
    tool:
      description: C(syntax), what found the problem.
      type: str
    message:
      description: What is wrong, e.g. C(not valid YAML) with the parser's message.
      type: str
checked:
  description: The configs that passed and need no tool, with what checked them.
  returned: success
  type: list
  elements: dict
  sample: [{key: loki, tools: [syntax]}]
syntax_checked:
  description: The keys whose syntax was checked here (every config but nginx's).
  returned: success
  type: list
  elements: str
tool_checks:
  description: The configs that passed here and need their tool, for M(shopstream.swarm.config_check).
  returned: success
  type: list
  elements: dict
  sample: [{key: traefik, name: shopstream_traefik, check: traefik, target: /etc/traefik/traefik.yml, image: traefik}]
skipped:
  description: The configs whose tool does not run because O(mode) is C(skip), with the reason.
  returned: success
  type: list
  elements: dict
  sample: [{key: prometheus, tool: promtool, reason: configs_validate is skip}]
"""
