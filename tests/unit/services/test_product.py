"""product's input rules: what a new product may carry."""

import pytest
from shopstream import product, server


def test_a_product_is_listed_unless_it_says_otherwise():
    assert product.validate({"name": " Mug ", "price_cents": 1299}) == ("Mug", None, 1299, 0, True)
    assert product.validate({"name": "verify-1", "price_cents": 100, "stock": 5, "listed": False})[4] is False


@pytest.mark.parametrize(
    "data, message",
    [
        ({"name": "Mug", "price_cents": 1, "listed": "no"}, "listed must be true or false"),
        ({"name": "Mug", "price_cents": 1, "listed": 0}, "listed must be true or false"),
        ({"name": " ", "price_cents": 1}, "name must be a non-empty string"),
        ({"name": "Mug", "price_cents": True}, "price_cents must be an integer"),
    ],
)
def test_bad_products_are_refused_with_400(data, message):
    with pytest.raises(server.HTTPError) as refused:
        product.validate(data)
    assert refused.value.status == 400 and message in str(refused.value)


def test_rows_show_listed_as_a_boolean():
    assert product.shown({"id": 1, "listed": 0}) == {"id": 1, "listed": False}
