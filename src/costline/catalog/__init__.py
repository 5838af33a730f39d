"""Price data and its loaders, compiled into ``costline.core.price.PriceRecord``s."""
