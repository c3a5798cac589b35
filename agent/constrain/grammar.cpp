// Grammar engine (owned by the constrained-decoding work).
