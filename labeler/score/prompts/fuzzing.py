"""Fuzzing: are the marked tokens the ones the label describes? Half the markings are moved to wrong tokens."""

SYSTEM = (
    "You judge labels of features of a sparse autoencoder trained on a language model. In each numbered "
    "context some tokens are marked <<like this>>. Given the feature's label, decide for each context "
    "whether the marked tokens are the ones the feature is active on: 1 if the marking fits the label, "
    "0 if the wrong tokens are marked. Reply with a JSON list of 1 or 0, one number per context in order, "
    "and nothing else."
)

USER = "Label: {label}\n\nContexts:\n{contexts}\n\nReply with a JSON list of {n} numbers."
