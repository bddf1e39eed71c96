"""Running the model: devices and precision, weights by name, the optional flow steps (ensemble,
test-time refinement) and the interpolator that prepares frames and synthesises between them."""
