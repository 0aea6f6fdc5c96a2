"""Backgrounds: the colour seen along rays that leave the scene (threestudio's `models/background`)."""
