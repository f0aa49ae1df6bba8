"""Coach: a hands-free voice coach for home workouts."""

__version__ = "0.1.0"
