"""catdog: SimCLR vs knowledge distillation for a small cat/dog CNN with few labels."""

CLASSES = ("Cat", "Dog")  # label 0 = Cat, label 1 = Dog, everywhere in the project
