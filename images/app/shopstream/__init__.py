"""ShopStream's own services: auth, gateway, product, order and notification, one image, one package."""
