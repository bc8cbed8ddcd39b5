"""Server-side wake word for satellites that stream all the time."""
