"""The experiments domain: submit, list, inspect, follow and cancel."""
