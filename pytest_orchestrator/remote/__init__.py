"""Running the test suite inside a container (or any exec prefix) and replaying its results."""
