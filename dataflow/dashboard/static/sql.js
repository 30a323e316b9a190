/* sql page — filled in by its page module. */
