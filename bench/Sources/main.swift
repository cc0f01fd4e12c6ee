import Histogram
import Reactor

print("bench: not yet")
