"""Evaluation metrics for generated images: feature extractors, reference features and scores."""
