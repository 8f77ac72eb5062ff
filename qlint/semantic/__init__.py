"""The semantic model rules query: names, classes, attributes, the forward path."""
