"""The bundled default weights (this folder is installed as the package hfdinterp.weights)."""
