"""The broker side: the access policy (pure, shared by the simulated and the real broker), and
later the embedded amqtt broker and the Mosquitto configuration export."""
