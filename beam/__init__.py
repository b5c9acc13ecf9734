"""Audio ingestion with Apache Beam."""
