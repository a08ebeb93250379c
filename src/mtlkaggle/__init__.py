"""mtlkaggle: multi-task image pipeline for Kaggle competitions."""

__version__ = "0.1.0"
