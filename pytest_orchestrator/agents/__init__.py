"""AI coding agents driven through their command-line interfaces: adapters, pricing, budget."""
