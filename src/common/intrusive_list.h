#pragma once

// A doubly-linked list whose links live inside the elements: the list itself
// is one pointer, and linking or unlinking allocates nothing. Circular: the
// head's prev is the tail.
//
// An element derives from IntrusiveList<T>::Hook and is in at most one such
// list at a time. The list does not own its elements.
//
// Thread: none; like its owner.

#include <cstddef>

namespace legate {

template <class T> class IntrusiveList {
public:
  class Hook {
  public:
    bool linked() const { return next_ != nullptr; }

  private:
    friend class IntrusiveList;
    T* prev_ = nullptr;
    T* next_ = nullptr;
  };

  IntrusiveList() = default;
  IntrusiveList(const IntrusiveList&) = delete;
  IntrusiveList& operator=(const IntrusiveList&) = delete;

  bool empty() const { return head_ == nullptr; }
  // Exactly one element.
  bool single() const { return head_ != nullptr && hook(head_).next_ == head_; }
  T* front() const { return head_; }
  T* back() const { return head_ != nullptr ? hook(head_).prev_ : nullptr; }
  // The element after t, or null at the end.
  T* next(T& t) const {
    T* n = hook(&t).next_;
    return n == head_ ? nullptr : n;
  }

  void pushBack(T& t) { insert(t, false); }
  void pushFront(T& t) { insert(t, true); }

  // Unlinks t (which must be in this list).
  void remove(T& t) {
    Hook& h = hook(&t);
    if (h.next_ == &t) {
      head_ = nullptr;
    } else {
      hook(h.prev_).next_ = h.next_;
      hook(h.next_).prev_ = h.prev_;
      if (head_ == &t) head_ = h.next_;
    }
    h.prev_ = h.next_ = nullptr;
  }

  // Calls f(T&) for each element; f may remove the element it is given (and
  // nothing else).
  template <class F> void forEach(F&& f) {
    for (T* t = head_; t != nullptr;) {
      T* n = next(*t);
      f(*t);
      t = n;
    }
  }

private:
  static Hook& hook(T* t) { return static_cast<Hook&>(*t); }

  void insert(T& t, bool as_head) {
    Hook& h = hook(&t);
    if (head_ == nullptr) {
      h.prev_ = h.next_ = &t;
      head_ = &t;
      return;
    }
    T* tail = hook(head_).prev_;
    h.prev_ = tail;
    h.next_ = head_;
    hook(tail).next_ = &t;
    hook(head_).prev_ = &t;
    if (as_head) head_ = &t;
  }

  T* head_ = nullptr;
};

} // namespace legate
