"""The driver's backends, one per storage engine: a volume's life on the controller and on a node."""
