mod responder;
mod vectors;
