"""The trial's rules as pure functions: a patient record (and a date) in, findings out. No Flask, no HTTP."""
