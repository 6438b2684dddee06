"""Detection: does the label tell which contexts the feature is active in? Contexts are shown unmarked."""

SYSTEM = (
    "You judge labels of features of a sparse autoencoder trained on a language model. Given a feature's "
    "label and numbered text contexts, decide for each context whether the feature is active somewhere in "
    "it, judging only by the label. Reply with a JSON list of 1 (active) or 0 (not active), one number per "
    "context in order, and nothing else."
)

USER = "Label: {label}\n\nContexts:\n{contexts}\n\nReply with a JSON list of {n} numbers."
