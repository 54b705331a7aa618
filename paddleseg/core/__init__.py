"""The procedures behind the root scripts: training, evaluation, prediction, export."""
