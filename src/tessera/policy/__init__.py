"""Policy decisions: Cedar bundles, an entity index, context, the PDP and its explanations."""
