"""gRPC servicers: proto → domain, call the runtime, domain → proto. Nothing else."""
