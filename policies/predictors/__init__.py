"""Output-length predictors: what a policy may know of a request's output before it ends."""
