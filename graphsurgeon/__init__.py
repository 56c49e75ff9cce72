"""graphsurgeon: surgery on legacy TensorFlow 1 models for transfer learning."""
__version__ = "0.1.0"
