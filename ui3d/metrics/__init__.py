"""Offline quality metrics: Fréchet distances, classifier scores, mixture statistics."""
