"""stack_progress: a long wait names what each stack still waits for."""

from ansible_collections.shopstream.swarm.plugins.filter.stack import stack_progress


def service(name, state, replicas, reason):
    return {"name": f"shopstream-{name}", "short": name.split("_", 1)[1], "state": state,
            "replicas": replicas, "reason": reason}  # fmt: skip


SERVICES = [
    service("app_order", "waiting", "1/2", "updating"),
    service("app_product", "converged", "2/2", "converged"),
    service("app_gateway", "waiting", "0/2", "0/2 ready; task pending: no suitable node"),
    service("edge_traefik", "converged", "1/1", "converged"),
    service("data_mariadb", "waiting", "0/1", "starting"),
]


def test_each_stack_names_its_services_that_have_not_converged():
    assert stack_progress(["app", "data"], SERVICES, "shopstream", 30.4) == [
        "shopstream-app after 30 s: order 1/2 (updating), gateway 0/2 (0/2 ready; task pending: no suitable node)",
        "shopstream-data after 30 s: mariadb 0/1 (starting)",
    ]


def test_a_stack_whose_tasks_all_run_waits_for_the_monitor_and_one_not_yet_created_says_so():
    assert stack_progress(["edge", "monitoring"], SERVICES, "shopstream", 15) == [
        "shopstream-edge after 15 s: its 1 service(s) run their tasks; waiting for them to last their update monitor",
        "shopstream-monitoring after 15 s: no service yet",
    ]


def test_another_prefix_is_another_platform():
    assert stack_progress(["app"], SERVICES, "shop", 1) == ["shop-app after 1 s: no service yet"]
