mod initiator;
mod responder;
mod vectors;
