/* chat_list: the intrusive doubly linked list both daemons use for what
 * comes and goes in any order (connections, a room's subscribers, a room's
 * parked polls): O(1) link at the head and unlink, no allocation. A node
 * has a prev and a next field (names given, so that one node can be in
 * several lists); the list is a pointer to its first node. An unlinked
 * node keeps its pointers (a loop may still step past it). */
#ifndef CHAT_LIST_H
#define CHAT_LIST_H

#define CHAT_LIST_LINK(head, node, prev, next)                                                     \
    do {                                                                                           \
        (node)->prev = NULL;                                                                       \
        (node)->next = (head);                                                                     \
        if (head)                                                                                  \
            (head)->prev = (node);                                                                 \
        (head) = (node);                                                                           \
    } while (0)

#define CHAT_LIST_UNLINK(head, node, prev, next)                                                   \
    do {                                                                                           \
        if ((node)->prev)                                                                          \
            (node)->prev->next = (node)->next;                                                     \
        else                                                                                       \
            (head) = (node)->next;                                                                 \
        if ((node)->next)                                                                          \
            (node)->next->prev = (node)->prev;                                                     \
    } while (0)

#endif
