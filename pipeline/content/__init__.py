"""What a page says: extraction, cleaning, language and sentences."""
