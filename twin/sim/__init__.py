"""The SimPy driver: virtual time, a simulated network and broker, the batched fleet stepper."""
