"""Data generators and samplers shared by experiment kinds."""
