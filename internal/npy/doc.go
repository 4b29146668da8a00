// Package npy reads and writes NumPy .npy files: a small self-describing
// header (magic, version, a Python dict literal with 'descr',
// 'fortran_order' and 'shape') followed by the raw array in C order.
//
// Reading is strict and cheap: ParseHeader accepts exactly the dict that
// numpy.save writes (format 1.0, 2.0 and 3.0), Open checks that the file is
// exactly as long as its header says, and File.ReadAt and File.ReadWindow
// read windows of the data with pread. Nothing is memory-mapped: a source
// tile that is truncated or replaced while it is open must give an error,
// not a SIGBUS, and nothing reads a whole file when a window will do.
package npy
