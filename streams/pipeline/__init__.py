"""The Faust side: the app factory, its topics, the declaration agent, the publisher, webhooks."""
