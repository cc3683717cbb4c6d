"""Operations tools: backup, restore, export."""
