"""What an article is about: topics, places, people, and the story it belongs to."""
