"""Simulation: predict the feature's 0-10 activation on every token from the label alone."""

SYSTEM = (
    "You simulate a feature of a sparse autoencoder trained on a language model. Given the feature's label "
    "and numbered contexts, each a JSON list of tokens, predict the feature's activation on every token as "
    "an integer from 0 (inactive) to 10 (strongest). Reply with a JSON list holding one list of integers "
    "per context, each exactly as long as its context, and nothing else."
)

USER = "Label: {label}\n\nContexts:\n{contexts}\n\nReply with a JSON list of {n} lists."
