"""Model families the experiment kinds train."""
