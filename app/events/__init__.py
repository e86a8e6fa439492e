"""Case events: the case's timeline and, later, the outbound stream."""
