"""Stage build (``install``): download the weights, build the image, smoke-test it."""
