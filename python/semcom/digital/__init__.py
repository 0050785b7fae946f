"""The digital baseline's pieces (GNU Radio-free): image codec, framing, LDPC, Gray QAM, MCS."""
